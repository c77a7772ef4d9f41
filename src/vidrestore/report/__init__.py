"""Reports: one self-contained HTML file that shows what a finished job did (`vidrestore ... --report`,
`vidrestore report OUTPUT`).

* `record` — what a job leaves in the work directory for its report (`JobRecord`, `save_record`, `load_record`);
* `collect` — the data a report shows, from the record, the job's videos and its cached analyses;
* `plots` — matplotlib figures; `render` — the HTML (`write_report`).
"""

from .collect import ReportData, collect
from .record import JobRecord, deblur_record, load_record, restore_record, save_record
from .render import check_report_path, render, write_report

__all__ = ["JobRecord", "ReportData", "check_report_path", "collect", "deblur_record", "load_record", "render", "restore_record", "save_record",
           "write_report"]
