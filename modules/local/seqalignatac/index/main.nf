process SEQALIGNATAC_INDEX {
    tag "index"
    label 'process_single'

    conda "${moduleDir}/environment.yml"
    container "seqalignatac/seqalignatac:0.1.0"

    input:
    path report_dirs, stageAs: 'reports/report_?????'   // every pair's report/ folder

    output:
    path "index/index.html", emit: html
    tuple val("${task.process}"), val('seqalignatac'), eval('seqalignatac --version | sed "s/.* //"'), emit: versions_seqalignatac, topic: versions

    script:
    def args = task.ext.args ?: ''
    // `report --index DIR` reads DIR/<pair_id>/report/, the published layout: rebuild it with
    // links, taking each pair id from its <pair_id>_report.html.
    """
    for dir in reports/report_*; do
        html=\$(ls "\$dir"/*_report.html | head -n 1)
        pair_id=\$(basename "\$html" _report.html)
        mkdir -p "index/\$pair_id"
        ln -s "\$PWD/\$dir" "index/\$pair_id/report"
    done
    seqalignatac_report.py \\
        --index index \\
        ${args}
    """

    stub:
    """
    mkdir -p index
    touch index/index.html
    """
}
