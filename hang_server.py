import socket, time, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(50)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
    if sys.argv[2] == "partial":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nabc")
    elif sys.argv[2] == "drip":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        for i in range(10000):
            c.sendall(b"x"); time.sleep(0.5)
