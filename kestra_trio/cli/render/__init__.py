"""PURE renderers by concern (rows → rich Text/Table or JSON-ready values); no Console here."""
