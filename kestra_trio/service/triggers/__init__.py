"""Triggers that start executions with nobody at the keyboard: cron (`cron.py`) and the ends
of other workflows (`flow.py`), over the enabled workflows of the registry (`catalog.py`)."""
