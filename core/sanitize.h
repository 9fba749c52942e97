/* sanitize.h - whether this build runs under a sanitizer.
 *
 * RM_SANITIZED is 1 in AddressSanitizer, UndefinedBehaviorSanitizer and
 * ThreadSanitizer builds (gcc names ASan and TSan, clang all three), else
 * 0. Code that must behave differently there uses it: no ifunc resolver
 * (it runs before the sanitizer runtime is set up), no object pools (they
 * would hide a use after free).
 */
#ifndef RINGMTA_CORE_SANITIZE_H
#define RINGMTA_CORE_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer) || \
	__has_feature(thread_sanitizer)
#define RM_SANITIZED 1
#endif
#endif
#ifndef RM_SANITIZED
#define RM_SANITIZED 0
#endif

#endif
