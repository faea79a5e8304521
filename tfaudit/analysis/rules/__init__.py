"""The built-in risk rules, one module per family; `tfaudit.analysis.builtin` dispatches them."""
