$NetBSD$

Add -V, which prints the version.

--- exwc.c.orig
+++ exwc.c
@@ -9,6 +9,10 @@
 	long lines = 0, words = 0, bytes = 0;
 	int c, inword = 0;
 
+	if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'V') {
+		puts("exwc 1.3 (pkgsrc)");
+		return 0;
+	}
 	if (argc > 1 && (f = fopen(argv[1], "r")) == NULL) {
 		perror(argv[1]);
 		return 1;
