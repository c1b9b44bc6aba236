"""Reports around the stages: the call JSON, scorecards, the agency evaluation report, tables
and XLSX/CSV exports.
"""
