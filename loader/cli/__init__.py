"""The `dicom-loader` command: what a user types and what the terminal shows.

In: arguments, `DICOM_LOADER_*` variables and `dicom-loader.toml` (settings_file.py).
Out: a call into jobs/ with typed settings, and what comes back rendered: the
summary and exit code (app.py), the HTML report (html_report.py), the log file
(log_file.py); plus the commands that only talk to the user: `init`
(init_wizard.py) and `doctor` (doctor.py).
"""
