// placeholder: the widget is built in its own change
export {};
