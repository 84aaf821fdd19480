/* The floor of a listing: for each session directory of ROOT, openat,
 * read and close its session.json, and write the records to stdout. Nothing
 * is parsed, checked or probed. Built and timed by bench/run. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    static char buf[65536], path[512];
    DIR *root = opendir(argc > 1 ? argv[1] : ".");
    if (!root) { perror("opendir"); return 1; }
    struct dirent *e;
    while ((e = readdir(root))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/session.json", e->d_name);
        int fd = openat(dirfd(root), path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
        close(fd);
    }
    return 0;
}
