module example.com/kiln/hello-go

go 1.19
