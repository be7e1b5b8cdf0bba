process SEQALIGNATAC_ANNOTATE {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "${ task.accelerator ? 'seqalignatac/seqalignatac:0.1.0-cuda' : 'seqalignatac/seqalignatac:0.1.0' }"

    input:
    tuple val(meta), path(cells)
    path(settings, stageAs: 'user_settings/*')   // --settings TOML ([annotate] table), or [] (docs/settings.md)

    output:
    tuple val(meta), path("annotate/predictions.csv"), emit: predictions
    tuple val(meta), path("annotate"),                 emit: dir
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args   = task.ext.args ?: ''
    def device = task.accelerator ? 'cuda' : 'cpu'
    def settings_opt = settings ? "--config ${settings}" : ''
    """
    seqalignatac_annotate.py \\
        --cells ${cells} \\
        ${settings_opt} \\
        --outdir annotate \\
        --device ${device} \\
        --threads ${task.cpus} \\
        --no-progress \\
        ${args}
    """

    stub:
    """
    mkdir -p annotate
    touch annotate/predictions.csv annotate/query_clusters.csv annotate/query_annotated.h5ad annotate/annotate_summary.json
    """
}
