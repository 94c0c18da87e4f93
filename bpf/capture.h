/* The records and settings shared between bpf/capture.bpf.c (kernel) and user space. User space reads
 * and writes them through one table, src/capture/record-layout.ts; test/capture-record-layout.test.ts
 * parses this file and fails when the two differ. */
#ifndef TLSREC_CAPTURE_H
#define TLSREC_CAPTURE_H

/* Bytes of payload in one ring buffer record. Calls larger than this are split into several records. */
#define CAP_CHUNK 16384
/* Upper bound of chunks+iovecs walked for one call (bpf_loop iterations): 1<<20 * 16 KiB = 16 GiB. */
#define CAP_MAX_STEPS (1 << 20)
/* readv/writev/sendmsg/recvmsg: iovecs looked at per call. */
#define CAP_MAX_IOV 1024

enum cap_type {
	CAP_DATA = 1,
	CAP_OPEN = 2,
	CAP_CLOSE = 3,
	CAP_LOSS = 4,
	CAP_EXEC = 5,
	CAP_MAP = 6,  /* on the `mapped` ring only: a process in scope was stopped mapping an unknown file */
};

enum cap_source {
	CAP_SRC_TLS = 1,
	CAP_SRC_SOCKET = 2,
};

enum cap_dir {
	CAP_DIR_IN = 0,  /* the app read these bytes */
	CAP_DIR_OUT = 1, /* the app wrote these bytes */
};

enum cap_role {
	CAP_ROLE_CONNECT = 1,
	CAP_ROLE_ACCEPT = 2,
};

enum cap_loss_reason {
	CAP_LOSS_RINGBUF_FULL = 1,
	CAP_LOSS_READ_FAULT = 2,
};

/* Record header; `len` payload bytes follow it (data bytes, the peer sockaddr of an open event, or the
 * file name of an exec event). 48 bytes, no padding. */
struct cap_event {
	__u64 ts_ns;
	__u64 conn;     /* TLS: SSL*; socket: fd << 32 | creation stamp */
	__u64 pos;      /* data/loss: position of the first byte within conn+dir */
	__u32 tgid;
	__u32 tid;
	__u32 call_len; /* data: bytes moved by the whole call; loss: bytes lost */
	__u32 chunk_off;/* data: offset of this chunk within the call */
	__u32 len;      /* payload bytes that follow */
	__u8 type;      /* enum cap_type */
	__u8 source;    /* enum cap_source */
	__u8 dir;       /* enum cap_dir */
	__u8 aux;       /* open: enum cap_role; loss: enum cap_loss_reason */
};

#define CAP_HDR_SIZE 48

/* A file a process maps executable, as the kernel names it: inode number and super_block->s_dev
 * (MAJOR << 20 | MINOR, not stat()'s encoding). Key of the `known_files` map; in a CAP_MAP record,
 * conn = ino and pos = dev. */
struct file_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

/* Per-CPU loss counters (one array entry), summed by user space. */
struct cap_counters {
	__u64 ringbuf_full; /* records that did not fit */
	__u64 read_fault;   /* user memory that could not be read */
	__u64 bytes_lost;   /* payload bytes in those records */
};

/* The const volatile settings written into .rodata by user space before load. */
struct cap_config {
	__u64 target_cgid;  /* bpf_get_current_cgroup_id() of the recorded command's cgroup */
	__u8 attach_on_map; /* stop processes that map unknown executable files (stop_if_unknown) */
	__u8 pad[7];
};

#endif
