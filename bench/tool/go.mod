module sparta.bench/tool

go 1.21
