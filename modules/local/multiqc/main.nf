process MULTIQC {
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] && !task.ext.singularity_pull_docker_container
        ? 'https://depot.galaxyproject.org/singularity/multiqc:1.27.1--pyhdfd78af_0'
        : 'biocontainers/multiqc:1.27.1--pyhdfd78af_0' }"

    input:
    path multiqc_files, stageAs: '?/*'
    path multiqc_config

    output:
    path "multiqc_report.html", emit: report
    path "multiqc_data",        emit: data
    // Not on the `versions` topic: MULTIQC's input waits for that topic to close, so it would hang.
    tuple val("${task.process}"), val('multiqc'), eval('multiqc --version | sed "s/.* //"'), emit: versions_multiqc

    script:
    def args = task.ext.args ?: ''
    """
    multiqc \\
        --force \\
        --config ${multiqc_config} \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_data
    touch multiqc_report.html
    """
}
