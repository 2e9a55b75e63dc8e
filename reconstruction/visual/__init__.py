"""Pictures of a reconstruction: the skeleton drawn on the images (overlay videos) and over time in
3D (``plot3d.png``). A new view of the results (a 3D viewer, an HTML report) goes here."""
