module sparta.test/gitserver

go 1.26.0
