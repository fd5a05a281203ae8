"""Reports: the HTML comparison report (papermill + nbconvert) and the helpers its cells call."""

from meshlab.report.build import ReportOutcome, build_report, render_html, report_main
from meshlab.report.sections import ReportContext, exit_code, prepare

__all__ = ["ReportContext", "ReportOutcome", "build_report", "exit_code", "prepare",
           "render_html", "report_main"]
