"""Reliability tests: each reproduces a way gradbatch could lose data, store a wrong number or
fail noisily (concurrent runs, kills, full disks, hostile input, damaged files) and checks the
three promises: a complete-looking file is whole, a number is right or NaN, a failure is one line."""
