process SEQALIGNATAC_NTTINY {
    tag "nt-tiny"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    output:
    path "nt_tiny", emit: model
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    """
    seqalignatac_nt_tiny.py \\
        --outdir nt_tiny \\
        ${args}
    """

    stub:
    """
    mkdir -p nt_tiny
    touch nt_tiny/config.json
    """
}
