process SEQALIGNATAC_EXTRACT {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    tuple val(meta), path(peaks), path(genome, stageAs: 'genome/*')

    output:
    // The content hash lets the workflow embed identical peak sets (same peaks, genome, width) once.
    tuple val(meta), path("extract/peaks.fa"), eval('sha256sum extract/peaks.fa | cut -c1-64'), emit: fasta
    tuple val(meta), path("extract"),                                                       emit: dir
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    """
    mkdir -p extract
    seqalignatac_extract.py \\
        --peaks ${peaks} \\
        --fasta ${genome} \\
        --out extract/peaks.fa \\
        --summary extract/peaks.fa.summary.json \\
        ${args}
    """

    stub:
    """
    mkdir -p extract
    echo '>chr1:0-10' > extract/peaks.fa
    touch extract/peaks.fa.summary.json
    """
}
