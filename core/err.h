/* err.h - the one error vocabulary (STYLE.md 10).
 *
 * 0 is success, RM_AGAIN means "need more input / try again later" and is not
 * an error, every other failure is a distinct negative number. Functions that
 * return these are RM_MUST_USE.
 */
#ifndef RINGMTA_CORE_ERR_H
#define RINGMTA_CORE_ERR_H

#define RM_MUST_USE __attribute__((warn_unused_result))

enum rm_err {
	RM_OK = 0,
	RM_AGAIN = -1,  /* incomplete input, or a resource is busy */
	RM_EPROTO = -2, /* malformed input from a peer */
	RM_ENOMEM = -3, /* an arena or pool ran out: a handled outcome */
	RM_ELIMIT = -4, /* a configured limit was passed */
	RM_EINVAL = -5, /* a caller passed something impossible */
	RM_EIO = -6,    /* the environment failed (disk, socket) */
};

/* rm_strerror - a short constant description of an rm_err */
const char *rm_strerror(int err);

#endif
