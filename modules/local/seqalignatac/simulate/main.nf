process SEQALIGNATAC_SIMULATE {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    val meta    // map: [ id:'simulated' ]

    output:
    tuple val(meta), path("simulated/reference.h5ad"), path("simulated/query.h5ad"), path("simulated/genome.fa"), emit: data
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    """
    seqalignatac_simulate.py \\
        --outdir simulated \\
        ${args}
    """

    stub:
    """
    mkdir -p simulated
    touch simulated/reference.h5ad simulated/query.h5ad simulated/genome.fa
    """
}
