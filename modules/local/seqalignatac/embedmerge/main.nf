process SEQALIGNATAC_EMBEDMERGE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    tuple val(meta), path(parts, stageAs: 'parts/*')

    output:
    tuple val(meta), path("embed/embeddings.h5"), emit: embeddings
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    // The shard names are zero-padded (shard_00001.h5, ...), so the glob lists them in FASTA order.
    """
    mkdir -p embed
    seqalignatac_embed_merge.py \\
        parts/shard_*.h5 \\
        --out embed/embeddings.h5 \\
        ${args}
    """

    stub:
    """
    mkdir -p embed
    touch embed/embeddings.h5
    """
}
