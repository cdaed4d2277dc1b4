/*
 * The course material's TCP client, with its mistakes corrected.
 * 课程材料中的 TCP 客户端，已改正其中的错误。
 *
 * Usage / 用法: ./client PORT [ROUNDS]
 * It connects, then ROUNDS times (default 1) sends "Hello, Server" and reads
 * the answer. / 连接后，ROUNDS 次（默认 1 次）发送 "Hello, Server" 并读取回复。
 *
 * Build / 编译: cc -Wall -Wextra -Werror -o client client.c
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

    /* 3. Connect to the server / 连接服务器: the kernel does the three-way
     *    handshake; 0 on success / 内核完成三次握手，成功返回 0 */
    if (connect(sockfd, (struct sockaddr *)&serv_addr, sizeof(serv_addr)) < 0) {
        perror("connect"); exit(1);
    }

    const char *message = "Hello, Server";
    char buffer[1024];
    for (long round = 0; round < rounds; round++) {
        /* 4. Send data / 发送数据 */
        if (send(sockfd, message, strlen(message), 0) < 0) { perror("send"); exit(1); }

        /* 5. Receive data / 接收数据: 0 means the server closed its side /
         *    返回 0 表示对方已关闭 */
        ssize_t valread = read(sockfd, buffer, sizeof(buffer) - 1);
        if (valread < 0) { perror("read"); exit(1); }
        if (valread == 0) break;
        buffer[valread] = '\0';
        if (rounds == 1) printf("received: %s\n", buffer);
    }

    /* 6. Close / 关闭 */
    close(sockfd);
    return 0;
}
