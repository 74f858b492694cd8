"""The work: broker set-up, probe and recorder tasks, and the pure logic they use."""
