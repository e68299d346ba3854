"""Controlled one-factor studies (`study.run_study`) and their report, on the search's engine."""
