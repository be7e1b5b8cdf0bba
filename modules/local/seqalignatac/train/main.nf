process SEQALIGNATAC_TRAIN {
    tag "${meta.id}"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "${ task.accelerator ? 'seqalignatac/seqalignatac:0.1.0-cuda' : 'seqalignatac/seqalignatac:0.1.0' }"

    input:
    tuple val(meta), path(accessibility), path(embeddings)   // embeddings: [] for --method lsi
    path(settings, stageAs: 'user_settings/*')                // --settings TOML, or [] (docs/settings.md)

    output:
    tuple val(meta), path("train/cell_embeddings.h5ad"), emit: cells
    tuple val(meta), path("train"),                      emit: dir
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions
    tuple val("${task.process}"), val('torch'), eval('python3 -c "import torch; print(torch.__version__)"'), emit: versions_torch, topic: versions

    script:
    def args       = task.ext.args ?: ''
    def device     = task.accelerator ? 'cuda' : 'cpu'
    // Peaks on contigs absent from the FASTA have no sequence (EXTRACT counts them): train on the
    // rest ([train] missing_embeddings = "drop", docs/settings.md). The user's --settings file comes
    // after it (later --config files override earlier ones key by key), so it can set that key too.
    def embeddings_opt = embeddings ? "--embeddings ${embeddings} --config train_settings.toml" : ''
    def settings_opt   = settings ? "--config ${settings}" : ''
    """
    printf '[train]\\nmissing_embeddings = "drop"\\n' > train_settings.toml
    seqalignatac_train.py \\
        --accessibility ${accessibility} \\
        ${embeddings_opt} \\
        ${settings_opt} \\
        --outdir train \\
        --device ${device} \\
        --threads ${task.cpus} \\
        --no-progress \\
        ${args}
    """

    stub:
    """
    mkdir -p train
    touch train/cell_embeddings.h5ad train/model.safetensors train/training_curve.tsv train/training_curve.png train/train_summary.json
    """
}
