process SEQALIGNATAC_FETCHMODEL {
    tag "${model}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    val model       // string: Hugging Face Hub repository id

    output:
    path "nt_model", emit: model
    tuple val("${task.process}"), val('huggingface_hub'), eval('python3 -c "import huggingface_hub; print(huggingface_hub.__version__)"'), emit: versions_huggingface_hub, topic: versions

    script:
    def args = task.ext.args ?: ''
    """
    seqalignatac_fetch_model.py \\
        --model ${model} \\
        --outdir nt_model \\
        ${args}
    """

    stub:
    """
    mkdir -p nt_model
    touch nt_model/config.json
    """
}
