process SEQALIGNATAC_PREPARE {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    tuple val(meta), path(reference, stageAs: 'input/reference/*'), path(query, stageAs: 'input/query/*')

    output:
    tuple val(meta), path("prepare/accessibility.h5ad"), emit: accessibility
    tuple val(meta), path("prepare/peaks.bed"),          emit: peaks
    tuple val(meta), path("prepare"),                    emit: dir
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    def query_label = meta.query_labels_key ? "--query-labels-key '${meta.query_labels_key}'" : ''
    """
    seqalignatac_prepare.py \\
        --reference ${reference} \\
        --query ${query} \\
        --labels-key '${meta.labels_key}' \\
        ${query_label} \\
        --outdir prepare \\
        ${args}
    """

    stub:
    """
    mkdir -p prepare
    touch prepare/accessibility.h5ad prepare/peaks.bed prepare/prepare_summary.json
    """
}
