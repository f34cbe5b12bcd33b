"""The Textual walkthrough of the seed incident: ``tui.app.make_app`` / ``tui.app.main``.

``tui.session`` runs sources (scenario or case) and indexes the trace; ``tui.rows`` says what each
step means (the conntrack words come from ``sim.report.words``); ``tui.quiz`` asks about the
decisive hooks; ``tui.widgets`` has one module per screen area, ``tui.screens`` the main, help,
open and quiz-result screens; ``tui.serve`` serves the app to browsers; ``tui.bench`` measures
it on a pseudo-terminal. The model in ``sim`` never imports this package.
"""
