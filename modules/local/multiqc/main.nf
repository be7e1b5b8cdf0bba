process MULTIQC {
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/multiqc:1.27.1"

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
    if ! command -v multiqc >/dev/null 2>&1; then
        echo "multiqc is not on PATH: run with a container profile (-profile docker|podman|singularity|apptainer), pip install multiqc==1.27.1, or add --skip_multiqc" >&2
        exit 127
    fi
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
