/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    SEQALIGNATAC: prepare -> extract -> embed -> train -> annotate -> report, per pair
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
*/

include { SEQALIGNATAC_NTTINY     } from '../modules/local/seqalignatac/nttiny'
include { SEQALIGNATAC_FETCHMODEL } from '../modules/local/seqalignatac/fetchmodel'
include { SEQALIGNATAC_PREPARE    } from '../modules/local/seqalignatac/prepare'
include { SEQALIGNATAC_EXTRACT    } from '../modules/local/seqalignatac/extract'
include { SEQALIGNATAC_TRAIN      } from '../modules/local/seqalignatac/train'
include { SEQALIGNATAC_ANNOTATE   } from '../modules/local/seqalignatac/annotate'
include { SEQALIGNATAC_REPORT     } from '../modules/local/seqalignatac/report'
include { SEQALIGNATAC_INDEX      } from '../modules/local/seqalignatac/index'
include { MULTIQC                 } from '../modules/local/multiqc'
include { EMBED_PEAKS             } from '../subworkflows/local/embed_peaks'

workflow SEQALIGNATAC {

    take:
    ch_pairs        // channel: [ meta, reference.h5ad, query.h5ad, genome FASTA ]
    nt_model        // string: Hub id, local folder, or 'kmer'
    nt_tiny         // boolean: build a tiny random NT instead (test profile)
    embed_shards    // integer: EMBED tasks per distinct peak set
    train_method    // string: 'nt' (sequence-informed stage 1) or 'lsi' (no embeddings needed)
    settings        // string: TOML file with [train] and/or [annotate] tables (docs/settings.md), or null
    multiqc_config  // string: custom MultiQC config, or null for assets/multiqc_config.yml
    skip_multiqc    // boolean
    outdir          // string

    main:
    def use_sequences = train_method != 'lsi'

    SEQALIGNATAC_PREPARE(ch_pairs.map { meta, reference, query, _genome -> [ meta, reference, query ] })

    //
    // Peak sequences -> NT embeddings (skipped for --train_method lsi)
    //
    def ch_pair_embeddings = channel.empty()
    def ch_extract_dirs    = channel.empty()
    if (use_sequences) {
        def ch_genome = ch_pairs.map { meta, _reference, _query, genome -> [ meta, genome ] }
        SEQALIGNATAC_EXTRACT(SEQALIGNATAC_PREPARE.out.peaks.join(ch_genome, failOnMismatch: true, failOnDuplicate: true))

        // The weights are fetched once per run (compute nodes need no internet), unless the
        // model is a local folder or needs no weights.
        def ch_model = channel.value([])
        def model_name = nt_model
        if (nt_tiny) {
            SEQALIGNATAC_NTTINY()
            ch_model = SEQALIGNATAC_NTTINY.out.model   // a process without inputs emits a value channel
            model_name = 'nt-tiny'
        } else if (nt_model ==~ /kmer(:\d+)?/) {
            ch_model = channel.value([])
        } else if (file(nt_model).exists()) {
            ch_model = channel.value(file(nt_model, checkIfExists: true))
        } else {
            SEQALIGNATAC_FETCHMODEL(nt_model)
            ch_model = SEQALIGNATAC_FETCHMODEL.out.model
        }

        EMBED_PEAKS(SEQALIGNATAC_EXTRACT.out.fasta, ch_model, model_name, embed_shards)
        ch_pair_embeddings = EMBED_PEAKS.out.embeddings
        ch_extract_dirs    = SEQALIGNATAC_EXTRACT.out.dir
    }

    //
    // Stage 1 (cell embeddings) and stage 2 (labels)
    //
    def ch_train_in = use_sequences
        ? SEQALIGNATAC_PREPARE.out.accessibility.join(ch_pair_embeddings, failOnMismatch: true, failOnDuplicate: true)
        : SEQALIGNATAC_PREPARE.out.accessibility.map { meta, accessibility -> [ meta, accessibility, [] ] }
    // The user's settings file, staged into every TRAIN and ANNOTATE task (a value channel: reused
    // by every pair); [] when not given, the nf-core way for an optional file input.
    def ch_settings = settings ? channel.value(file(settings, checkIfExists: true)) : channel.value([])
    SEQALIGNATAC_TRAIN(ch_train_in, ch_settings)
    SEQALIGNATAC_ANNOTATE(SEQALIGNATAC_TRAIN.out.cells, ch_settings)

    //
    // Per-pair HTML reports and an index over pairs
    //
    def ch_sequence_dirs = use_sequences
        ? ch_extract_dirs.join(ch_pair_embeddings, failOnMismatch: true, failOnDuplicate: true)
        : SEQALIGNATAC_PREPARE.out.dir.map { meta, _dir -> [ meta, [], [] ] }
    SEQALIGNATAC_REPORT(
        SEQALIGNATAC_PREPARE.out.dir
            .join(SEQALIGNATAC_TRAIN.out.dir, failOnMismatch: true, failOnDuplicate: true)
            .join(SEQALIGNATAC_ANNOTATE.out.dir, failOnMismatch: true, failOnDuplicate: true)
            .join(ch_sequence_dirs, failOnMismatch: true, failOnDuplicate: true)
    )
    // Collected in pair order, not arrival order: the list order is part of the cache key.
    SEQALIGNATAC_INDEX(
        SEQALIGNATAC_REPORT.out.dir
            .toSortedList { a, b -> a[0].id <=> b[0].id }
            .map { entries -> entries.collect { entry -> entry[1] } }
    )

    //
    // Software versions (topic channel) -> pipeline_info/
    //
    def ch_versions_yml = channel.topic('versions')
        .unique()
        .map { process, tool, version -> [ process.tokenize(':')[-1], "    ${tool}: ${version}" ] }
        .groupTuple(by: 0)
        .map { process, lines -> "${process}:\n${lines.unique().sort().join('\n')}" }
        .collectFile(storeDir: "${outdir}/pipeline_info", name: 'seqalignatac_software_mqc_versions.yml', sort: true, newLine: true)

    //
    // MultiQC: the per-pair summary tables and the software versions
    //
    def ch_multiqc_report = channel.empty()
    if (!skip_multiqc) {
        def multiqc_config_file = multiqc_config
            ? file(multiqc_config, checkIfExists: true)
            : file("${projectDir}/assets/multiqc_config.yml", checkIfExists: true)
        MULTIQC(
            SEQALIGNATAC_REPORT.out.mqc.map { _meta, tsv -> tsv }.mix(ch_versions_yml).collect(sort: { a, b -> a.name <=> b.name }),
            multiqc_config_file
        )
        ch_multiqc_report = MULTIQC.out.report
    }

    emit:
    index          = SEQALIGNATAC_INDEX.out.html   // channel: index.html
    predictions    = SEQALIGNATAC_ANNOTATE.out.predictions
    multiqc_report = ch_multiqc_report
}
