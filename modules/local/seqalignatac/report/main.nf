process SEQALIGNATAC_REPORT {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    tuple val(meta), path(prepare_dir, stageAs: 'in/prepare'), path(train_dir, stageAs: 'in/train'), path(annotate_dir, stageAs: 'in/annotate'), path(extract_dir, stageAs: 'in/extract'), path(embeddings, stageAs: 'in/embed/*')
    // extract_dir and embeddings are [] with --train_method lsi (no sequences)

    output:
    tuple val(meta), path("report/${meta.id}_report.html"), emit: html
    tuple val(meta), path("report/${meta.id}_mqc.tsv"),     emit: mqc
    tuple val(meta), path("report"),                        emit: dir
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args        = task.ext.args ?: ''
    def extract_opt = extract_dir ? "--extract-dir ${extract_dir}" : ''
    def embed_opt   = embeddings ? '--embed-dir in/embed' : ''
    """
    seqalignatac_report.py \\
        --pair-id ${meta.id} \\
        --prepare-dir ${prepare_dir} \\
        --train-dir ${train_dir} \\
        --annotate-dir ${annotate_dir} \\
        ${extract_opt} \\
        ${embed_opt} \\
        --outdir report \\
        ${args}
    """

    stub:
    """
    mkdir -p report
    touch report/${meta.id}_report.html report/${meta.id}_mqc.tsv
    """
}
