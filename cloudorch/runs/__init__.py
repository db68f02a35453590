"""Run history: one record per command that reads or changes a plan's state (`record.RunRecord`),
kept beside that state in the same backend with an index and a documented retention (`history`).

It stores and lists records and the notification outbox that rides with them; it never decides
what a run did (the operations in `cloudorch.run` and `cloudorch.release` say so) and never
delivers anything (`cloudorch.notify` does).
"""
