"""One module per SMS API dialect; each translates its wire format to and from ``services`` and never imports another."""
