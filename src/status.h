/* The verbs status and finalize. They log, and return 0 or an error code for main. */
#ifndef LUKSIPC_STATUS_H
#define LUKSIPC_STATUS_H

/* notes: print the admin notes for framework (NULL: the recorded or installed one). */
int status_run(const char *state, const char *device, int json, int notes, const char *framework);
/*
 * Wipes the state of a conversion that is finished on device (NULL: the
 * recorded one), after YES on the terminal unless batch.
 */
int finalize_run(const char *state, const char *device, const char *header, int batch);

#endif
