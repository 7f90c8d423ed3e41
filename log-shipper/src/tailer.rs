//! File tailing by identity (device, inode). Owner: delivery work.
