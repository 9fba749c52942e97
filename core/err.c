/* err.c - names for the error vocabulary. Pure; any thread. */
#include "core/err.h"

/* rm_strerror - a short constant description of an rm_err */
const char *rm_strerror(int err)
{
	switch (err) {
	case RM_OK: return "ok";
	case RM_AGAIN: return "again";
	case RM_EPROTO: return "protocol error";
	case RM_ENOMEM: return "out of memory";
	case RM_ELIMIT: return "limit exceeded";
	case RM_EINVAL: return "invalid argument";
	case RM_EIO: return "i/o error";
	}
	return "unknown error";
}
