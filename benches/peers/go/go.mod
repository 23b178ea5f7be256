module growstack/peers

go 1.19
