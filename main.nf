#!/usr/bin/env nextflow
/*
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    seqalignatac/seqalignatac
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    scATAC-seq cell-type annotation from a labeled reference: peak DNA sequences ->
    Nucleotide Transformer embeddings -> stage-1 cell embeddings -> stage-2 graph
    domain adaptation -> HTML reports.
    Github : https://github.com/seqalignatac/seqalignatac
----------------------------------------------------------------------------------------
*/

include { SEQALIGNATAC            } from './workflows/seqalignatac'
include { PIPELINE_INITIALISATION } from './subworkflows/local/utils_nfcore_seqalignatac_pipeline'
include { PIPELINE_COMPLETION     } from './subworkflows/local/utils_nfcore_seqalignatac_pipeline'

workflow {

    main:
    PIPELINE_INITIALISATION(
        params.version,
        params.validate_params,
        params.input,
        params.fasta,
        params.simulate,
        params.outdir
    )

    SEQALIGNATAC(
        PIPELINE_INITIALISATION.out.pairs,
        params.nt_model,
        params.nt_tiny,
        params.embed_shards,
        params.train_method,
        params.settings,
        params.multiqc_config,
        params.skip_multiqc,
        params.outdir
    )

    PIPELINE_COMPLETION(
        params.outdir,
        params.monochrome_logs
    )
}
