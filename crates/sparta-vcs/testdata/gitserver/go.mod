module sparta.test/gitserver

go 1.22
