"""One module per screen; each talks to the core only through `manager.tui.actions.Core`."""
