"""The service chassis: settings, logging, telemetry, database, migrations, errors, bootstrap.

Every service builds on these modules so that each concept has exactly one home.
"""
