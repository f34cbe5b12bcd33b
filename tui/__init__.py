"""The Textual walkthrough of the seed incident (issue 5): ``tui.app.make_app`` / ``tui.app.main``.

``tui.model`` is the view model (plain Python over the trace); ``tui.widgets`` one module per
screen area; ``tui.screens`` the main, help and open screens. The model in ``sim`` never
imports this package.
"""
