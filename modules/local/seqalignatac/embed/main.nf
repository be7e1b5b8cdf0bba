process SEQALIGNATAC_EMBED {
    tag "${meta.id} ${shard}/${meta.shards}"
    label 'process_medium'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    container "${ task.accelerator ? 'seqalignatac/seqalignatac:0.1.0-cuda' : 'seqalignatac/seqalignatac:0.1.0' }"

    input:
    tuple val(meta), path(fasta), val(shard)   // meta: [ id:<peak set hash>, shards:N, pairs:[...] ]; shard: 1..N
    path model_dir                             // staged weights folder, or [] for a model that needs none
    val model_name                             // used when model_dir is [] (e.g. 'kmer')

    output:
    tuple val(meta), path("shard_*.h5"), emit: shard
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions
    tuple val("${task.process}"), val('torch'), eval('python3 -c "import torch; print(torch.__version__)"'), emit: versions_torch, topic: versions

    script:
    def args   = task.ext.args ?: ''
    def model  = model_dir ?: model_name
    def device = task.accelerator ? 'cuda' : 'cpu'
    def part   = "shard_${shard.toString().padLeft(5, '0')}.h5"   // zero-padded: merged in shard order
    """
    # The embedding cache stays in the task folder; --embed_cache_dir (--cache-dir in args) names a shared one.
    export SEQALIGNATAC_CACHE="\$PWD/embed_cache"
    seqalignatac_embed.py \\
        --fasta ${fasta} \\
        --model ${model} \\
        --out ${part} \\
        --shard ${shard}/${meta.shards} \\
        --device ${device} \\
        --threads ${task.cpus} \\
        --no-progress \\
        ${args}
    """

    stub:
    def part = "shard_${shard.toString().padLeft(5, '0')}.h5"
    """
    touch ${part}
    """
}
