"""Where a customer's live state comes from: the Exchange Online connector (live/) or a tenant
file served by the emulator (emulator/), chosen by ``--live`` or the tenant's ``connection``.

A layer of its own, above both, so that neither reaches up to the other."""
