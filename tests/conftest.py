"""Fast tests: pure logic, plus the process module against real child processes."""
