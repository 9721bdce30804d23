"""Live state: backends that speak Exchange's cmdlets, and the reader that turns their answers
into the model."""
