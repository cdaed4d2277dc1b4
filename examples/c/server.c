/*
 * The course material's TCP server, with its mistakes corrected.
 * 课程材料中的 TCP 服务端，已改正其中的错误。
 *
 * Usage / 用法: ./server PORT [ROUNDS]
 * It accepts one client, then ROUNDS times (default 1) reads a message and
 * answers "Hello, Client". / 接受一个客户端，然后 ROUNDS 次（默认 1 次）
 * 读取一条消息并回复 "Hello, Client"。
 *
 * Build / 编译: cc -Wall -Wextra -Werror -o server server.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [ROUNDS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long rounds = argc > 2 ? atol(argv[2]) : 1;

    /* 1. Create the socket / 创建套接字: a NEW fd (>= 0), -1 on error */
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);
    if (sockfd < 0) { perror("socket"); exit(1); }

    /* 2. Configure the server address / 配置服务器地址 (no system call) */
    struct sockaddr_in serv_addr;
    memset(&serv_addr, 0, sizeof(serv_addr));
    serv_addr.sin_family = AF_INET;
    serv_addr.sin_port = htons(port);
    serv_addr.sin_addr.s_addr = inet_addr("127.0.0.1");

    /* 3. Bind the socket / 绑定套接字: 0 on success */
    if (bind(sockfd, (struct sockaddr *)&serv_addr, sizeof(serv_addr)) < 0) {
        perror("bind"); exit(1);
    }

    /* 4. Start listening / 启动监听: 5 is the accept queue's length, not a
     *    device limit / 5 是等待 accept 的队列长度，不是设备上限 */
    if (listen(sockfd, 5) < 0) { perror("listen"); exit(1); }
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    /* 5. Accept a connection / 接受连接: a NEW fd for the connection; the
     *    kernel already did the handshake / 返回新的 fd，握手已由内核完成 */
    struct sockaddr_in client_addr;
    socklen_t addr_len = sizeof(client_addr);
    int new_socket = accept(sockfd, (struct sockaddr *)&client_addr, &addr_len);
    if (new_socket < 0) { perror("accept"); exit(1); }

    const char *message = "Hello, Client";
    char buffer[1024];
    for (long round = 0; round < rounds; round++) {
        /* 6. Receive data / 接收数据: from new_socket, not the listening
         *    sockfd; 0 means the client closed / 从 new_socket 读取；0 表示对方已关闭 */
        ssize_t valread = read(new_socket, buffer, sizeof(buffer) - 1);
        if (valread < 0) { perror("read"); exit(1); }
        if (valread == 0) break;
        buffer[valread] = '\0';
        if (rounds == 1) printf("received: %s\n", buffer);

        /* 7. Send data / 发送数据: on the connection too / 同样使用 new_socket */
        if (send(new_socket, message, strlen(message), 0) < 0) { perror("send"); exit(1); }
    }

    /* 8. Close / 关闭: both fds, the connection and the listening socket /
     *    连接和监听套接字都要关闭 */
    close(new_socket);
    close(sockfd);
    return 0;
}
