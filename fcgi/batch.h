/*
 * batch: the "avatar.fcgi variants" subcommand. It makes the size and
 * format variants (variant.h) of every original already in an avatars
 * directory: for trees filled by other means than uploads, and after
 * --sizes or --formats change. Uploads make their own variants; this
 * command is never needed for them.
 *
 *	avatar.fcgi variants --dir DIR [--jobs N] [--prune] [shared options]
 *
 * The shared options are the responder's (conf.h): --sizes, --formats,
 * --quality, --max-pixels and the other image limits choose what is made,
 * exactly as the upload path would make it. The originals are the files
 * ID.EXT directly in DIR (a canonical id, an extension of ext.h's list, no
 * dot files); N worker processes (default: the online CPUs) each make the
 * missing variants of one id at a time with vmake_id, so a re-run only
 * looks at names and makes nothing, and a run stopped halfway resumes
 * where it stopped. SIGINT, SIGTERM and SIGHUP stop it cleanly: no new id
 * is started, and each worker finishes the id it holds (vmake writes each
 * file to a temporary name and renames it, so none is left half written).
 *
 * --prune, after making: removes from DIR/.v every variant whose original
 * is gone or has changed since (its tag is not the current original's),
 * and temporary files older than STORE_TMP_MAX_AGE. Nothing outside
 * DIR/.v is ever removed, and no symlink is followed there. Variants of
 * sizes and formats no longer configured are kept: another responder may
 * share the directory with other settings. Beside a live responder, a
 * prune can remove the variants an upload made just before renaming its
 * new original in (they carry a tag that is not yet current); the read
 * path then serves the original and has them made again. A prune can
 * make a variant missing, never stale. Workers run at the caller's
 * priority: beside live traffic, start the command under nice(1).
 *
 * Output: on a terminal, a progress bar on stderr (done/total, percent,
 * ids per second, variants made, ETA), redrawn at most ten times a second;
 * always, one summary line on stdout at the end. Each refused original
 * (an image limit, a file that does not decode) and each id that failed
 * is named on stderr, one line each.
 *
 * Exit status: 0 when every original was handled (a refused original
 * counts as handled: it is reported and the responder keeps serving it
 * as stored; a re-run would only refuse it again); 1 when a variant or an
 * id failed (a write error, a worker that died), a prune removal failed,
 * or the run was interrupted; 2 for a start-up error, after one line
 * naming the option or path.
 */
#ifndef AVATAR_BATCH_H
#define AVATAR_BATCH_H

/* Most worker processes --jobs may ask for. */
#define BATCH_JOBS_MAX 64

/* argv[0] is "variants". Returns the exit status. */
int batch_main(int argc, char **argv);

#endif
