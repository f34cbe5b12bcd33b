"""The Textual walkthrough of the seed incident (issue 5): not built yet.

The model in ``sim`` never imports this package.
"""
