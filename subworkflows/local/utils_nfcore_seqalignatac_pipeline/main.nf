//
// Pipeline start and end: parameter validation, the pairs channel, the completion summary.
//

include { validateParameters  } from 'plugin/nf-schema'
include { paramsSummaryMap    } from 'plugin/nf-schema'
include { samplesheetToList   } from 'plugin/nf-schema'
include { SEQALIGNATAC_SIMULATE } from '../../../modules/local/seqalignatac/simulate'

workflow PIPELINE_INITIALISATION {

    take:
    version          // boolean: print the version and exit
    validate_params  // boolean: validate parameters against nextflow_schema.json
    input            // string: samplesheet CSV (docs/design.md columns), or null with --simulate
    fasta            // string: genome FASTA for rows without a 'fasta' column value
    simulate         // boolean: generate a small synthetic dataset instead of reading --input
    outdir           // string: where results go

    main:
    if (version) {
        log.info("${workflow.manifest.name} ${workflow.manifest.version}")
        System.exit(0)
    }
    if (validate_params) {
        validateParameters()
    }
    log.info(parametersSummary(workflow))
    if (!outdir) {
        error("--outdir is required: the folder the results are written to")
    }

    def ch_pairs = channel.empty()
    if (simulate) {
        // Test data made by a first step: one simulated dataset, used by two pairs with the
        // same peaks (with and without query labels), so the embedding is shared.
        SEQALIGNATAC_SIMULATE([ id: 'simulated' ])
        ch_pairs = SEQALIGNATAC_SIMULATE.out.data.flatMap { _meta, reference, query, genome ->
            [
                [ [ id: 'sim_labeled',   labels_key: 'cell_type', query_labels_key: 'cell_type' ], reference, query, genome ],
                [ [ id: 'sim_unlabeled', labels_key: 'cell_type', query_labels_key: null ],        reference, query, genome ]
            ]
        }
    } else if (input) {
        def default_genome = fasta ? file(fasta, checkIfExists: true) : null
        def rows = samplesheetToList(input, "${projectDir}/assets/schema_input.json")
        ch_pairs = channel.fromList(rows).map { meta, reference, query, genome ->
            def pair_genome = genome ?: default_genome
            if (!pair_genome) {
                error("${input}: pair '${meta.id}' has no genome FASTA: fill its 'fasta' column or give --fasta")
            }
            [ meta + [ query_labels_key: meta.query_labels_key ?: null ], reference, query, pair_genome ]
        }
    } else {
        error("Give --input samplesheet.csv (columns: pair_id,reference,labels_key,query[,query_labels_key,fasta]), or use -profile test")
    }

    emit:
    pairs = ch_pairs   // channel: [ meta: [ id, labels_key, query_labels_key ], reference.h5ad, query.h5ad, genome FASTA ]
}

workflow PIPELINE_COMPLETION {

    take:
    outdir           // string
    monochrome_logs  // boolean

    main:
    // An assigned closure, not `workflow.onComplete { }`: inside that form `workflow` is null
    // when the handler runs (nextflow-io/nextflow#5261), which failed every run's last step.
    def run = workflow
    workflow.onComplete = {
        def green = monochrome_logs ? '' : '\033[0;32m'
        def red   = monochrome_logs ? '' : '\033[0;31m'
        def reset = monochrome_logs ? '' : '\033[0m'
        if (run.success) {
            log.info("${green}-[${run.manifest.name}]- finished: open ${outdir}/index.html${reset}")
        } else {
            log.info("${red}-[${run.manifest.name}]- failed: ${run.errorMessage ?: 'see the task errors above'}; logs in ${outdir}/pipeline_info/. Fix the cause and rerun with -resume: finished tasks come from the cache.${reset}")
        }
    }
}

//
// The parameter summary printed at start. nf-schema 2.7.3's paramsSummaryLog casts
// workflow.container to a Map and crashes when a user config sets one `process.container`
// string, so the summary map is formatted here.
//
def parametersSummary(run) {
    def groups = paramsSummaryMap(run)
    def lines = []
    def width = groups.values().collect { group -> (group as Map).keySet().collect { key -> key.toString().size() }.max() ?: 0 }.max() ?: 0
    groups.each { group, values ->
        def entries = (values as Map).findAll { _key, value -> value != null && value != '' }
        if (entries) {
            lines << group.toString()
            entries.each { key, value -> lines << "  ${key.toString().padRight(width)}: ${value}" }
            lines << ''
        }
    }
    return lines.join('\n')
}
