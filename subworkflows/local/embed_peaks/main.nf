//
// Embed the peak sequences of every pair, once per distinct peak set.
//
// Pairs whose peaks.fa are byte-identical (same reference peaks, genome and width) share one
// embedding store: the FASTA's sha256 keys the work. Each peak set is scattered over
// `shards` EMBED tasks (one GPU each) and merged back in shard order.
//

include { SEQALIGNATAC_EMBED      } from '../../../modules/local/seqalignatac/embed'
include { SEQALIGNATAC_EMBEDMERGE } from '../../../modules/local/seqalignatac/embedmerge'

workflow EMBED_PEAKS {

    take:
    ch_fasta     // channel: [ meta, peaks.fa, sha256 ] one per pair
    ch_model     // value channel: staged weights folder, or [] when the model needs none
    model_name   // string: the model to name when ch_model is [] (e.g. 'kmer')
    shards       // integer: EMBED tasks per peak set

    main:
    // One entry per distinct peak set; meta.pairs lists the pairs that use it (sorted, so the
    // published copy lands in a predictable pair folder).
    def ch_peak_sets = ch_fasta
        .map { meta, fasta, sha -> [ sha, meta.id, fasta ] }
        .groupTuple(by: 0)
        .map { sha, pair_ids, fastas ->
            // The FASTA of the first pair by name, not of the first to arrive: the copies are
            // identical but live in different task folders, and the path is part of EMBED's
            // cache key, so an arrival-order pick re-ran EMBED and everything after on -resume.
            def first = [ pair_ids, fastas ].transpose().min { entry -> entry[0] }
            [ [ id: "peaks_${sha.take(12)}", sha256: sha, shards: shards, pairs: pair_ids.sort() ], first[1] ]
        }

    SEQALIGNATAC_EMBED(
        ch_peak_sets.combine(channel.of(1..shards)),
        ch_model,
        model_name
    )

    // Shards in shard order (their names are zero-padded), not arrival order: the list order
    // is part of EMBEDMERGE's cache key.
    SEQALIGNATAC_EMBEDMERGE(
        SEQALIGNATAC_EMBED.out.shard.groupTuple(by: 0, size: shards, sort: { a, b -> a.name <=> b.name })
    )

    // Back to one entry per pair: [ pair meta, embeddings.h5 ]
    def ch_pair_embeddings = ch_fasta
        .map { meta, _fasta, sha -> [ sha, meta ] }
        .combine(SEQALIGNATAC_EMBEDMERGE.out.embeddings.map { meta, h5 -> [ meta.sha256, h5 ] }, by: 0)
        .map { _sha, meta, h5 -> [ meta, h5 ] }

    emit:
    embeddings = ch_pair_embeddings   // channel: [ meta, embeddings.h5 ]
}
