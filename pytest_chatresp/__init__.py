"""pytest-chatresp: record chat completion calls once, replay them offline, assert the contract."""
