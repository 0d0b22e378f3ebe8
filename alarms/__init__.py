"""Alarms: rules over readings and model residuals, the alarm life cycle and its store, and
the notifiers that deliver them (DESIGN: may import core, storage, processing).

The shared vocabulary is in `alarms.model`: a rule reports `Condition`s (what it sees now),
the life cycle turns them into `Alarm`s and `Transition`s (raised, updated, cleared,
acknowledged), and a `Dispatcher` delivers transitions without ever blocking evaluation.
"""
