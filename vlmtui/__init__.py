"""vlmtui: test vision-language models in a terminal dashboard without letting them take the machine down."""

__version__ = "0.1.0"
